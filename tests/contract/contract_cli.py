"""`make contract`: a longer schemathesis CLI run against `belong serve` on loopback.

Starts the server on a fresh database beside the tests' (BELONG_TEST_DATABASE_URL's server,
or the embedded one), imports the sample directory, and runs `schemathesis run` over
openapi/openapi.json with every check and the stateful phase, as the suite's
test_schemathesis does but with more examples (BELONG_CONTRACT_EXAMPLES, default 150).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.platform.credentials import SCOPES  # noqa: E402
from tests.conftest import scratch_database  # noqa: E402
from tests.live import belong, live_server  # noqa: E402

CONFIG = """
[checks.positive_data_acceptance]
# Business rules (consent, referral steps, unknown ids in a body) answer 409/412/422.
expected-statuses = ["2xx", "401", "403", "404", "409", "412", "422", "429"]
"""


def main() -> int:
    examples = os.environ.get("BELONG_CONTRACT_EXAMPLES", "150")
    with tempfile.TemporaryDirectory(prefix="belong-contract-") as folder:
        url = scratch_database("contract")
        config = Path(folder) / "schemathesis.toml"
        config.write_text(CONFIG)
        quiet = {"BELONG_RATE_LIMIT_PER_MINUTE": "0"}
        with live_server(url, Path(folder), SCOPES, clinic="contract", extra_env=quiet) as server:
            belong(
                "directory",
                "import",
                "--clinic",
                "contract",
                str(ROOT / "deploy/seed/directory.hsds.json"),
                env=server.env,
            )
            command = [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(config),
                "run",
                str(ROOT / "openapi/openapi.json"),
                "--url",
                server.origin,
                "--header",
                f"Authorization: Bearer {server.token}",
                "--checks",
                "all",
                "--max-examples",
                examples,
                "--workers",
                "2",
            ]
            return subprocess.run(command, timeout=3600, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
