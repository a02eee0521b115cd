"""Sentiment trends per brand and competitor: series, spikes, share of voice, exports."""
