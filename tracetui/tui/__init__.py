"""The live monitor (Textual). Only this package and the CLI import Textual or Rich."""
