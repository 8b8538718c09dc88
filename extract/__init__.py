"""Feature extraction: extractors behind a registry, writing ragged HDF5 stores."""
