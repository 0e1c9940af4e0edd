"""Statistics that say whether the best cell of a backtest sweep is luck.

A robustness run tries many configurations and reports the best. Its Sharpe ratio is the
maximum of many noisy estimates, so it is biased upwards. Two modules measure how much:

- :mod:`models.overfitting.dsr`: the probabilistic Sharpe ratio (PSR), the expected maximum
  Sharpe ratio of N skill-less trials and the deflated Sharpe ratio (DSR);
- :mod:`models.overfitting.pbo`: the Probability of Backtest Overfitting by Combinatorially
  Symmetric Cross-Validation (CSCV).

Conventions shared by both:

- every Sharpe ratio here is **per period** (not annualised), with a zero risk-free rate and
  the sample standard deviation (ddof=1): :func:`models.metrics.per_period_sharpe`. Divide an
  annualised ratio by ``sqrt(periods_per_year)`` before passing it in. This differs from
  :func:`models.metrics.annualised_sharpe`, which annualises and reports 0.0 for a flat
  series;
- an undefined statistic is NaN, never a crash: a zero-variance series, fewer than three
  finite returns, or NaN inputs give NaN. Inputs that cannot be right (negative variance,
  fewer than one trial, an impossible kurtosis, a malformed PBO matrix) raise ``ValueError``;
- ``kurtosis`` is always the **non-excess (Pearson)** kurtosis, 3 for a normal distribution.
  See :func:`models.overfitting.dsr.probabilistic_sharpe_ratio` for the trap this avoids.
"""
