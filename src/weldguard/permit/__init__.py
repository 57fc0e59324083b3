"""动火作业票 (hot-work permits) and the holiday calendar (节假日安排) that raises
a permit's level on holidays and rest days."""
