"""Small I/O-edge utilities shared across meshfilter (files, ports, processes)."""
