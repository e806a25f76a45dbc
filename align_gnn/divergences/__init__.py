from align_gnn.divergences.utils import (
    DIVERGENCES,
    MMD,
    AdversarialDivergence,
    ConditionalTransport,
    HeadwiseMLP,
    SinkhornDivergence,
    _check_rho,
    fusable,
    fused_default,
    resolve_divergence,
)
