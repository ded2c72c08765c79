// fhir-kit-client (npm) against a live Belong: _summary=count, _count=0, and paging by next.
// Usage: node fhir_kit_client.mjs BASE_URL TOKEN PATIENT; prints one JSON object.
import { Client } from "fhir-kit-client";

const [baseUrl, bearerToken, patient] = process.argv.slice(2);
const client = new Client({ baseUrl, bearerToken });

const counted = await client.search({
  resourceType: "Observation",
  searchParams: { patient, _summary: "count" },
});
const zero = await client.search({
  resourceType: "Observation",
  searchParams: { patient, _count: 0 },
});
const ids = [];
let bundle = await client.search({
  resourceType: "Observation",
  searchParams: { patient, _count: 2 },
});
let pages = 1;
for (;;) {
  for (const entry of bundle.entry ?? []) ids.push(entry.resource.id);
  const next = client.nextPage({ bundle });
  if (next === undefined || pages > 20) break;
  bundle = await next;
  pages += 1;
}
console.log(
  JSON.stringify({
    summaryTotal: counted.total,
    summaryEntries: (counted.entry ?? []).length,
    zeroTotal: zero.total,
    zeroEntries: (zero.entry ?? []).length,
    ids,
    pages,
  }),
);
