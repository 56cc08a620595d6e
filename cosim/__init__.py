"""quickspike.cosim"""
