"""The seed's analyses beyond terrain: ensembles along the path, function diversity."""
