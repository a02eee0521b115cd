"""Daily digest for managers."""
