"""The study's table as DomainBed prints it: one row per method, one column per held-out domain, then the average;
cells are held-out accuracy in percent, `mean ± standard error` over trials."""

from __future__ import annotations

METHOD_LABELS = {"zeroshot": "Zero-shot", "erm": "ERM", "indigo": "InDiGo"}


def accuracy_table(results: list[dict]) -> dict[str, dict[str, float]]:
    """{method: {held-out domain: test accuracy}} from the per-domain results."""
    table: dict[str, dict[str, float]] = {}
    for result in results:
        for method, summary in result["methods"].items():
            table.setdefault(method, {})[result["held_out"]] = summary["test_acc"]
    return table


def markdown_table(results: list[dict], selection: str = "training-domain validation") -> str:
    domains = sorted(result["held_out"] for result in results)
    by_domain = {result["held_out"]: result for result in results}
    methods = list(dict.fromkeys(method for result in results for method in result["methods"]))
    lines = [
        f"Model selection: {selection} set",
        "",
        "| Algorithm | " + " | ".join(domains) + " | Avg |",
        "|---|" + "---|" * (len(domains) + 1),
    ]
    for method in methods:
        cells, values = [], []
        for domain in domains:
            summary = by_domain[domain]["methods"].get(method)
            if summary is None:
                cells.append("X")
                continue
            values.append(summary["test_acc"])
            cells.append(f"{100 * summary['test_acc']:.1f} ± {100 * summary['test_acc_stderr']:.1f}")
        average = f"{100 * sum(values) / len(values):.1f}" if len(values) == len(domains) else "X"
        lines.append(f"| {METHOD_LABELS.get(method, method)} | " + " | ".join(cells) + f" | {average} |")
    return "\n".join(lines) + "\n"


def flat_metrics(results: list[dict]) -> dict[str, float]:
    """`dg/<method>/<domain>` held-out accuracy, `dg/<method>/avg`, and `dg/<method>/<domain>/val` (the selection's)."""
    metrics: dict[str, float] = {}
    for method, by_domain in accuracy_table(results).items():
        for domain, value in by_domain.items():
            metrics[f"dg/{method}/{domain}"] = value
        metrics[f"dg/{method}/avg"] = sum(by_domain.values()) / len(by_domain)
    for result in results:
        for method, summary in result["methods"].items():
            metrics[f"dg/{method}/{result['held_out']}/val"] = summary["val_acc"]
    return metrics
