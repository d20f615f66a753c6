"""The MCP door: chat panels and coding agents start governed runs over MCP."""
