"""pyfed: federated learning on pykernels.

- ``pyfed.algorithms``: FedAdamW, FedMuon, FedLADA, Local AdamW, Local Muon and the baselines FedAvg,
  FedAvgM, FedProx, SCAFFOLD, FedCM, FedAdam, FedSAM, MoFedSAM — each a small object with the interface
  ``server_init / client_payload / client_update / server_aggregate`` (see algorithms/base.py), shared
  by the in-process simulator and (later) the Flower app.
- ``pyfed.simulator.simulate(FedConfig(...))``: one machine, N clients, S per round; runs/<name>/ with
  config.json, metrics.jsonl, a resumable checkpoint and acc.png.
- ``python -m pyfed train|compare``: the command line.
"""
