"""The tools that measure the lab: the guard matrix run over real HTTP, and its report.

- `matrix`: which scenario runs under which guard or policy
- `locust_runs`: headless Locust as a child process (the server is `bankapp.server.processes.ServerProcess`)
- `runner`: the matrix run against one server, row after row
- `rows`: Locust's numbers and the server's counters merged into one row
- `series`: a row over time: the server's counters read once a second while Locust runs
- `anomalies`: anomalies grouped by kind, with first, worst and last examples
- `explain`: a sentence per row
- `columns`: the table's columns, for the terminal and the report
- `console`: the progress bar, the table and the exit code of `bankapp compare`
- `report`: results.json, results.csv, anomalies.json, report.md, report.html, report.png
"""
