//! A wire-faithful Azure Key Vault + Entra ID stand-in for integration tests.
