"""`mlg-monitor`: watching a broker and the project's topics, for operators.

`watch` (the report and its alarms, from `$SYS` and the status, mark and node-status
topics), `prom` (the report as Prometheus samples), `view` (the live terminal view, rich)
and `cli` (the command, its exit codes for alerting).

May import: `ledger_node.wire` (topics, marks) and `ledger_node.shared`; the monitor
needs no node.
"""
