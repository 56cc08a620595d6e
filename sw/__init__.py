"""quickspike.sw"""
