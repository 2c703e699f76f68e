"""Moving guests between nodes: live migration (`live.py`) and node drains
(`drain.py`), both level-triggered from what nodes report."""
