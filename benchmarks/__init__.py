"""Speed of lossy against native code, as ratios measured in the same process."""
