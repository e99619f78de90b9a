"""A chaos engineering and reliability harness for Ethereum JSON-RPC infrastructure."""
