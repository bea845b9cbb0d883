"""FastMCP's proxy in front of a stdio MCP server, itself served on stdio.

The reference point for proxy-bench: `fastmcp_proxy.py BACKEND [ARGS...]`. Set up the
way FastMCP's docs recommend (`create_proxy` over a `StdioTransport`); the transport
keeps the backend process and its session alive across requests.
"""

import sys

from fastmcp.client.transports import StdioTransport
from fastmcp.server import create_proxy


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: fastmcp_proxy.py BACKEND [ARGS...]")
    command, *args = sys.argv[1:]
    proxy = create_proxy(StdioTransport(command=command, args=args), name="fastmcp-proxy")
    proxy.run(transport="stdio", show_banner=False)


if __name__ == "__main__":
    main()
