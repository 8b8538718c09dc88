"""The ground floor: what data/ and extract/ (and above them model/) share. Imports nothing from them."""
