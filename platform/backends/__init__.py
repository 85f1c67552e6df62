"""Pipeline backends: kfp.local on this machine, kfp.Client on a cluster."""
