"""kube-proxy: Services as nftables (or iptables) rules, or a userspace proxy.

``start_proxy(client_or_kubeconfig, node_name, mode, ...) -> RunningProxy``; see
:mod:`pinnace.proxy.proxier`.  The rule generation (:mod:`.nftables`,
:mod:`.iptables`) and the model (:mod:`.model`) are pure functions.
"""

from .proxier import MODES, RunningProxy, start_proxy

__all__ = ["MODES", "RunningProxy", "start_proxy"]
