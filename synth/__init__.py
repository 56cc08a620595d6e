"""quickspike.synth"""
