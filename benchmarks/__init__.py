"""Performance ratios for ``make bench``; not run by ``make test``.

Every figure is a throughput ratio against a baseline measured in the same process and the
same run (backtrader's own SMA crossover on the same bars), so machine speed and load cancel.
There are no timing thresholds anywhere: the numbers are recorded, not asserted.
"""
