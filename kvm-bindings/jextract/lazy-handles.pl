#!/usr/bin/perl -0pi
# Post-processes jextract's output (run by regenerate.sh on every generated file): an array field's element
# VarHandle is made on first use, in a holder class of its own, instead of in the struct class's static
# initializer. Building a layout VarHandle makes the JDK generate classes (tens of milliseconds for the first), and
# a struct class is initialized by any use, so every VM paid for handles of array fields it never touches.
s/    private static final VarHandle (\w+)\$ELEM_HANDLE = (.*?);\n/    private static final class $1\$ELEM_HANDLE {\n        static final VarHandle HANDLE = $2;\n    }\n/g;
s/(\w+\$ELEM_HANDLE)\.(get|set)\(/$1.HANDLE.$2(/g;
