"""The domain: cases, the transition table, guards, deadlines. No I/O frameworks here."""
