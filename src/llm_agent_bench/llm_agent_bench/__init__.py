"""`llm-agent bench`: every performance claim measured side by side, written to a report folder.

Each section is a module with `run(ctx) -> Section`; `report.py` runs them, writes `report.md`,
`results.json` and the PNG plots. Every figure is a ratio against a baseline measured in the
same run, with the raw numbers beside it (these machines are noisy).
"""
