#!/usr/bin/perl -0pi
# Post-processes jextract's output (run by regenerate.sh on every generated file): an array field's element
# handle (a VarHandle, or a slice MethodHandle for arrays of structs) is made on first use, in a holder class of
# its own, instead of in the struct class's static initializer. Building a layout handle makes the JDK generate
# classes (tens of milliseconds for the first), and a struct class is initialized by any use, so every VM paid
# for handles of array fields it never touches.
s/    private static final (VarHandle|MethodHandle) (\w+)\$ELEM_HANDLE = (.*?);\n/    private static final class $2\$ELEM_HANDLE {\n        static final $1 HANDLE = $3;\n    }\n/g;
s/(\w+\$ELEM_HANDLE)\.(get|set|invokeExact)\(/$1.HANDLE.$2(/g;
