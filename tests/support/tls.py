"""A throwaway certificate for TLS tests (made by demo.tls, which the benchmarks also use)."""

from demo.tls import self_signed

__all__ = ["self_signed"]
