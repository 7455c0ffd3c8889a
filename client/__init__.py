"""What a customer runs next to its proxies: the bootstrap generator (a later issue)."""
