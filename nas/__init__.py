"""Scoring (MACs, parameters), export and the search over the space of networks."""
