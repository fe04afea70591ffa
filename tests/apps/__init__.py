"""Applications the tests run that ragotel's own examples are not."""
