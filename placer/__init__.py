"""The placer: takes accepted orders from the orders topic and places them on the exchange."""
