"""A contract type import-linter lacks (registered in pyproject.toml's [tool.importlinter]).

A forbidden contract names modules that must exist, so it cannot say "another feature's
repository" of features that have none yet; this one reads the features' parts from the
import graph.
"""

from __future__ import annotations

from typing import Any

from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils


class FeatureBoundaries(Contract):
    """No feature imports another feature's ``private`` parts (its controllers, its
    repository): it calls that feature's service. Only direct imports count, since a
    feature's service may use its own repository."""

    type_name = "feature_boundaries"

    features = fields.ListField(subfield=fields.StringField())
    private = fields.ListField(subfield=fields.StringField())
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,
            unmatched_alerting=contract_utils.AlertLevel.ERROR,
        )
        features = [str(f) for f in self.features]
        private = {str(p) for p in self.private}

        def owner(module: str) -> str | None:
            return next((f for f in features if module == f or module.startswith(f + ".")), None)

        illegal = []
        for feature in features:
            for importer in sorted({feature} | graph.find_descendants(feature)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    other = owner(imported)
                    if other is None or other == feature:
                        continue
                    if imported[len(other) + 1 :].split(".")[0] not in private:
                        continue
                    for line in graph.get_import_details(importer=importer, imported=imported):
                        illegal.append(
                            f"{importer} -> {imported} (l.{line['line_number']}, "
                            f"{line['line_contents']})"
                        )
        return ContractCheck(
            kept=not illegal,
            metadata={"illegal": illegal},
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["illegal"]:
            output.print_error(line, bold=False)
            output.new_line()
