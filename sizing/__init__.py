"""Sizing and risk math: pure functions of explicit inputs, no backtrader (numba where hot)."""
