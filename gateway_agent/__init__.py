"""The edge gateway agent: Modbus and OPC-UA sources, decoding, MQTT publishing."""
