def main():
    print("quickspike")
