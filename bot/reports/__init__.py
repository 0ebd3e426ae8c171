"""Reports people look at: charts (PNG) drawn from plain figures, with a CJK font that resolves."""
