"""Small-works filing (限额以下小型工程备案) with the street, and its checks (核查)."""
