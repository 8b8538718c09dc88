"""Dataset adapters: the demo composer, MM-IMDb, Ads-Parallelity; manifest writing."""
