"""quickspike.hw"""
