"""Chat commands, one family per module; they receive platform-neutral messages only."""
