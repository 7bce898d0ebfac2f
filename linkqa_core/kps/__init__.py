"""Knowledge points: name the KPs of seeds (offline or with a model), normalise and curate them."""
