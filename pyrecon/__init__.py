"""pyrecon: MRI reconstruction on pykernels — DUN-SRE, TenF-INR and INR-based T1rho mapping.
(Skeleton: operators, data and methods land in later issues.)"""
