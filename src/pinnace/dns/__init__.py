"""Cluster DNS (``pinnace dns``): Services and EndpointSlices as DNS records
under the cluster domain, other names forwarded to the host's resolvers."""

from .cache import InformerFeed, RunningDns, start_dns
from .records import ClusterView, Resolver
from .server import DnsServer

__all__ = ["ClusterView", "DnsServer", "InformerFeed", "Resolver", "RunningDns", "start_dns"]
