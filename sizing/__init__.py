"""Sizing and risk math (pure functions, no backtrader) plus thin ``bt.Sizer`` adapters."""
