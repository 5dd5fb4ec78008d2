"""pyfed: federated learning on pykernels — FedAdamW, FedMuon, DP-FedPGN and their baselines, on an
in-process simulator and on Flower. (Skeleton: the simulator and algorithms land in later issues.)"""
