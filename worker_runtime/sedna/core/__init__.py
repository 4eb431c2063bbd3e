"""Edge-cloud collaborative features: joint inference, federated learning and others."""
