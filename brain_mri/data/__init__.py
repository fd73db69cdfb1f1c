"""Raw data: sources, upstream layouts, the embedded dataset, decoding, crop, splits, the processed format."""
