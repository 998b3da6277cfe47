"""cadesk: a chat bot for CA digital certificates on UKEYs."""
