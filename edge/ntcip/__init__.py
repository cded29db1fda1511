"""NTCIP 1202 v03 over SNMP (edge/ntcip/agent.py)."""
