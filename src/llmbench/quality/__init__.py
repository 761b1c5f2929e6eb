"""Output quality: ROUGE with bootstrap intervals, drift against full precision, saved outputs."""
