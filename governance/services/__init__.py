"""Services: every write Lethe makes, each in one transaction with its audit event."""
