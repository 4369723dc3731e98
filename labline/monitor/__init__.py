"""Monitoring: drift statistics (drift.py), the verdict and its alerts (health.py), where the
data comes from (sources.py), alert log and webhook (alerts.py), the report (report.py), and one
monitoring pass end to end (run.py), used by notebooks/monitor.ipynb and `labline monitor`."""
